process VALIDATE {
    tag "${meta.id}${meta.shards > 1 ? ' ' + meta.shard : ''}"
    label 'process_single'

    input:
    tuple val(meta), path(h5ad)

    output:
    tuple val(meta), path("qc.json"), emit: qc
    path("validate.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    ${StormCli.call('validate')} --input ${h5ad} ${StormCli.spec(meta)} --dataset ${meta.shards > 1 ? meta.shard : meta.id} --out qc.json ${task.ext.args ?: ''}
    """

    stub:
    """
    echo '{}' > qc.json; ${StormCli.stubFiles('validate')}
    """
}
