process REPORT {
    label 'process_single'

    input:
    path(metrics, stageAs: 'metrics/metrics*.csv')
    path(models, stageAs: 'models/model*')   // their train_log.csv: training curves
    path(qc, stageAs: 'qc/qc*.json')
    path(cells, stageAs: 'cells/cells*.h5ad')   // each model's sample of predicted and real cells
    val(run_info)         // storm and Nextflow versions, commit, parameters, datasets (JSON)
    val(versions)         // what every step ran, one YAML block per process
    val(pipeline_info)    // read in place for the trace, when the filesystem is shared
    val(store)            // the results store the run is appended to ('' for none)
    path(val_metrics, stageAs: 'val/metrics*.csv')   // a sweep's configurations on the validation pairs
    path(verdict)         // VERDICT's verdict.csv: each dataset's section opens with it
    path(new_conditions, stageAs: 'new/*')   // PREDICT_NEW's tables, when --predict_conditions asks

    output:
    path("report"), emit: report
    path("software_versions.yml"), emit: versions   // every step's, REPORT's own last

    script:
    def model_args = [models].flatten().collect { "--model-dir ${it}" }.join(' ')
    def qc_args = [qc].flatten().collect { "--qc ${it}" }.join(' ')
    def cell_args = [cells].flatten().collect { "--cells ${it}" }.join(' ')
    def store_arg = store ? "--store '${store}'" : ''
    def val_args = [val_metrics].flatten().collect { "--val-metrics ${it}" }.join(' ')
    def new_args = [new_conditions].flatten().collect { "--new-conditions ${it}" }.join(' ')
    """
    cat > run_info.json <<'STORM_RUN_INFO'
${run_info}
STORM_RUN_INFO
    cat > software_versions.yml <<'STORM_VERSIONS'
${versions}
STORM_VERSIONS
    mkdir -p report
    ${StormCli.call('report', 'report/report')} ${metrics} ${model_args} ${qc_args} ${cell_args} \\
        --run-info run_info.json --versions software_versions.yml \\
        --out-dir report --pipeline-info '${pipeline_info}' --verdict ${verdict} ${store_arg} ${val_args} ${new_args} \\
        ${task.ext.args ?: ''}
    ${StormCli.appendVersions(task.process)}
    """

    stub:
    """
    mkdir -p report/figures
    touch report/summary.csv report/comparisons.csv report/report.html software_versions.yml
    """
}
