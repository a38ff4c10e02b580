// Predictions for conditions no one measured: one model's runs over every seed (each trained on
// every cell but the requested conditions the data measures) predict the requested conditions from
// their cell types' controls: <model>.h5ad (cells, and the mean change per gene with its spread
// over seeds) and <model>.csv (top up- and down-regulated genes, flags).
process PREDICT_NEW {
    tag "${meta.id} ${meta.model}"
    label 'process_single'

    input:
    tuple val(meta), path(prepared, stageAs: 'prepared/*'), path(split), path(genes), path(models, stageAs: 'seed*'),
          path(requested)

    output:
    tuple val(meta), path("${meta.model}.csv"), emit: table
    path("${meta.model}.h5ad"), emit: h5ad
    path("predict_new.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    export OMP_NUM_THREADS=${task.cpus}
    ${StormCli.call('predict', 'predict_new')} ${StormCli.each('--prepared', prepared)} --split ${split}/split.parquet \\
        --genes ${genes} ${StormCli.each('--model-dir', models)} --conditions ${requested} --out '${meta.model}.h5ad'
    """

    stub:
    """
    touch '${meta.model}.h5ad' '${meta.model}.csv'; ${StormCli.stubFiles('predict_new')}
    """
}
