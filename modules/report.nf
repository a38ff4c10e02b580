process REPORT {
    label 'process_low'

    input:
    path(metrics, stageAs: 'metrics/metrics*.csv')

    output:
    path("report"), emit: report

    script:
    """
    storm report ${metrics} --out-dir report
    """

    stub:
    """
    mkdir -p report/figures
    touch report/summary.csv report/report.html
    """
}
