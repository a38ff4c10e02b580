process TRAIN {
    tag "${meta.id} ${meta.split} ${meta.model}"
    label 'process_medium'
    label 'process_gpu'   // sized and given a GPU by -profile gpu only

    input:
    tuple val(meta), path(prepared), path(split)

    output:
    tuple val(meta), path("model"), emit: model

    script:
    def args = task.ext.args ?: ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    storm train --prepared ${prepared} --split ${split}/split.csv --split-name ${meta.split} \\
        --model ${meta.model} --out-dir model --seed ${meta.seed} --dataset ${meta.id} ${args}
    """

    stub:
    """
    mkdir model
    echo '{}' > model/model.json
    """
}
