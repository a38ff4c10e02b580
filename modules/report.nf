process REPORT {
    label 'process_low'

    input:
    path(metrics, stageAs: 'metrics/metrics*.csv')
    path(models, stageAs: 'models/model*')
    val(pipeline_info)   // read in place for the trace, when the filesystem is shared

    output:
    path("report"), emit: report

    script:
    def model_args = models.collect { "--model-dir ${it}" }.join(' ')
    """
    storm report ${metrics} --out-dir report ${model_args} --pipeline-info '${pipeline_info}'
    """

    stub:
    """
    mkdir -p report/figures
    touch report/summary.csv report/comparisons.csv report/report.html
    """
}
