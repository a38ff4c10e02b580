process SYNTH {
    tag "${meta.id}"
    label 'process_low'

    input:
    val meta

    output:
    tuple val(meta), path("${meta.id}.h5ad"), emit: h5ad

    script:
    def args = task.ext.args ?: ''
    """
    storm synth --out ${meta.id}.h5ad --seed ${params.synth_seed} ${args}
    """

    stub:
    """
    touch ${meta.id}.h5ad
    """
}
