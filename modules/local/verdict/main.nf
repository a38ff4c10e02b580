// Per dataset: which model beats every baseline on most calibrated metrics, that none does, or that
// too few pairs were held out to tell; the fallback; and the run that predicts new conditions.
process VERDICT {
    label 'process_single'

    input:
    path(metrics, stageAs: 'metrics/metrics*.csv')
    path(val_metrics, stageAs: 'val/metrics*.csv')   // a sweep's configurations on the validation pairs
    path(plan)   // the grid: new conditions are predicted with one of its runs

    output:
    path("verdict.csv"), emit: verdict
    path("verdict.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def val_args = [val_metrics].flatten().collect { "--val-metrics ${it}" }.join(' ')
    """
    ${StormCli.call('verdict')} ${metrics} ${val_args} --plan ${plan} --out verdict.csv ${task.ext.args ?: ''}
    """

    stub:
    """
    printf 'dataset,verdict,winner,fallback,predict_with,n,unit,statement\\n' > verdict.csv; ${StormCli.stubFiles('verdict')}
    """
}
