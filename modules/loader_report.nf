process LOADER_REPORT {
    label 'process_low'

    input:
    path(results, stageAs: 'results/*')

    output:
    path("report"), emit: report

    script:
    """
    storm loaders report ${results} --out-dir report
    """

    stub:
    """
    mkdir report
    touch report/summary.csv
    """
}
