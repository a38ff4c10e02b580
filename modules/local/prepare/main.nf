process PREPARE {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(h5ad), path(qc)
    path(embeddings)  // --molecule_embeddings, when given

    output:
    tuple val(meta), path("prepared.h5ad"), emit: prepared
    path("prepare.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    ${StormCli.call('prepare')} --input ${h5ad} --qc ${qc} ${StormCli.spec(meta)} --out prepared.h5ad ${task.ext.args ?: ''}
    """

    stub:
    """
    touch prepared.h5ad; ${StormCli.stubFiles('prepare')}
    """
}
