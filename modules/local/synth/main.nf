process SYNTH {
    tag "${meta.id}"
    label 'process_single'

    input:
    val meta

    output:
    tuple val(meta), path("${meta.id}.h5ad"), emit: h5ad
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${StormCli.call('synth')} --out ${meta.id}.h5ad ${args}
    """

    stub:
    """
    touch ${meta.id}.h5ad; ${StormCli.stubFiles('synth')}
    """
}
