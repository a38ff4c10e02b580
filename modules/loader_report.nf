process LOADER_REPORT {
    label 'process_single'

    input:
    path(results, stageAs: 'results/*')

    output:
    path("report"), emit: report

    script:
    """
    mkdir -p report
    ${StormCli.call('loaders report', 'report/report')} ${results} --out-dir report
    """

    stub:
    """
    mkdir report
    touch report/summary.csv
    """
}
