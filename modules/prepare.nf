process PREPARE {
    tag "${meta.id}"
    label 'process_medium'

    input:
    tuple val(meta), path(h5ad), path(splits)

    output:
    tuple val(meta), path("prepared.h5ad"), emit: prepared

    script:
    def args = task.ext.args ?: ''
    def split_args = splits.collect { "--split ${it.name}=${it.name}/split.csv" }.join(' ')
    """
    storm prepare --input ${h5ad} ${split_args} --out prepared.h5ad ${task.ext.spec_args} ${args}
    """

    stub:
    """
    touch prepared.h5ad
    """
}
