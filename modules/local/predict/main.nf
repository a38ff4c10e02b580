process PREDICT {
    tag "${meta.id} ${meta.split} ${meta.model}"
    label 'process_single'

    input:
    tuple val(meta), path(prepared, stageAs: 'prepared/*'), path(split), path(genes), path(model)

    output:
    tuple val(meta), path("pred.h5ad"), emit: prediction
    path("predict.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    ${StormCli.call('predict')} ${StormCli.each('--prepared', prepared)} --split ${split}/split.parquet --genes ${genes} \\
        --model-dir ${model} --out pred.h5ad --seed ${meta.seed} ${args}
    """

    stub:
    """
    touch pred.h5ad; ${StormCli.stubFiles('predict')}
    """
}
