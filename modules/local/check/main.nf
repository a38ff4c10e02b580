// Everything that can be checked without reading X, before anything expensive runs: the dataset's
// columns and embeddings, every requested model and its config overrides, the split options.
// Its own task, so a grid that grows (a new model) re-runs only this check, not VALIDATE.
// plan.json is the grid (storm.grid): every training run, the model and environment (hence image)
// it runs in, its resources and the settings it trains with.
process CHECK {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(h5ad), path(shards, stageAs: 'shards/*')   // every shard: only --predict_conditions reads them
    path(holdout)   // the manual holdout or split file, when the strategy takes one; --predict_conditions' table

    output:
    tuple val(meta), path("plan.json"), emit: plan
    // what --predict_conditions asks of this dataset, and those of them it measures (held out of training)
    tuple val(meta), path("conditions/requested.csv"), path("conditions/holdout.csv"), optional: true, emit: conditions
    path("check.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    ${StormCli.call('check')} --input ${h5ad} ${StormCli.spec(meta)} ${task.ext.args} --plan plan.json \\
        ${StormCli.each('--conditions-data', shards)} ${task.ext.args2}
    """

    stub:
    """
    storm plan ${task.ext.args} --out plan.json; ${StormCli.stubFiles('check')}
    ${params.predict_conditions ? "mkdir conditions; cp ${file(params.predict_conditions).name} conditions/requested.csv; printf 'split,cell_type,perturbation\\n' > conditions/holdout.csv" : ''}
    """
}
