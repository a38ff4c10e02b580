process SUBSAMPLE {
    tag "${meta.id}${meta.shards > 1 ? ' ' + meta.shard : ''}"
    label 'process_single'

    input:
    // a shard of a sharded dataset comes with every shard (the sample is drawn on the dataset)
    tuple val(meta), path(h5ad, stageAs: 'input/*'), path(shards, stageAs: 'shards/*'), val(cell_types)

    output:
    tuple val(meta), path("subsample/*.h5ad"), emit: h5ad
    tuple path("subsample/*.json"), path("subsample.log"), emit: summary
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    def name = h5ad.toString().tokenize('/').last()   // the staged path holds its folder
    def keep = cell_types ? "--cell-types ${StormCli.quote(cell_types.join(','))}" : ''
    """
    ${StormCli.call('subsample')} --input ${h5ad} ${StormCli.each('--dataset-shards', shards)} ${StormCli.spec(meta)} \
        ${keep} --out subsample/${name} ${args}
    """

    stub:
    def name = h5ad.toString().tokenize('/').last()
    """
    mkdir subsample; touch subsample/${name} subsample/${name.replaceFirst(/\.h5ad$/, '.json')}; ${StormCli.stubFiles('subsample')}
    """
}
