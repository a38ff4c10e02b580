// Everything that can be checked without reading X, before anything expensive runs: the dataset's
// columns and embeddings, every requested model and its config overrides, the split options.
// Its own task, so a grid that grows (a new model) re-runs only this check, not VALIDATE.
// models.json says where each model trains and predicts (its environment, hence its image).
process CHECK {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(h5ad)
    path(holdout)   // the manual holdout or split file, when the strategy takes one

    output:
    tuple val(meta), path("models.json"), emit: checked
    path("check.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    ${StormCli.call('check')} --input ${h5ad} ${StormCli.spec(meta)} ${task.ext.args}
    storm models --json > models.json
    """

    stub:
    """
    storm models --json > models.json; ${StormCli.stubFiles('check')}
    """
}
