process PREPARE {
    tag "${meta.id}${meta.shards > 1 ? ' ' + meta.shard : ''}"
    label 'process_low'

    input:
    // a chemical screen's shard comes with every shard (their compounds are featurised together)
    tuple val(meta), path(h5ad), path(qc), path(shards, stageAs: 'shards/*')
    path(embeddings)  // --molecule_embeddings, when given

    output:
    tuple val(meta), path("prepared/*.h5ad"), emit: prepared
    path("prepare.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    ${StormCli.call('prepare')} --input ${h5ad} --qc ${qc} ${StormCli.each('--dataset-shards', shards)} \
        ${StormCli.spec(meta)} --out prepared/${h5ad.name} ${task.ext.args ?: ''}
    """

    stub:
    """
    mkdir prepared; touch prepared/${h5ad.name}; ${StormCli.stubFiles('prepare')}
    """
}
