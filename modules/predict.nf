process PREDICT {
    tag "${meta.id} ${meta.split} ${meta.model}"
    label 'process_medium'

    input:
    tuple val(meta), path(prepared), path(split), path(model)

    output:
    tuple val(meta), path("pred.h5ad"), path("real.h5ad"), emit: prediction

    script:
    def args = task.ext.args ?: ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    storm predict --prepared ${prepared} --split ${split}/split.csv --split-name ${meta.split} \\
        --model-dir ${model} --out-dir . --seed ${meta.seed} ${args}
    """

    stub:
    """
    touch pred.h5ad real.h5ad
    """
}
