process SPLIT {
    tag "${meta.id} seed${meta.seed}"
    label 'process_low'

    input:
    tuple val(meta), path(h5ad), path(qc)

    output:
    tuple val(meta), path("${meta.split}"), emit: split

    script:
    def args = task.ext.args ?: ''
    """
    storm split --input ${h5ad} --out-dir ${meta.split} --seed ${meta.seed} ${task.ext.spec_args} ${args}
    """

    stub:
    """
    mkdir ${meta.split}
    touch ${meta.split}/split.csv ${meta.split}/pairs.csv ${meta.split}/summary.json
    """
}
