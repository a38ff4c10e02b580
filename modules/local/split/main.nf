process SPLIT {
    tag "${meta.id} seed${meta.seed} ${meta.strategy}"
    label 'process_single'

    input:
    // one file, or a sharded dataset's shards in order; the manual holdout or split file, when
    // the strategy takes one
    tuple val(meta), path(h5ad), path(holdout)

    output:
    tuple val(meta), path("seed*", type: 'dir'), emit: split
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${StormCli.call('split')} ${StormCli.each('--input', h5ad)} --out-dir . --seed ${meta.seed} ${StormCli.spec(meta)} ${args}
    mv split.log seed*/
    """

    stub:   // the folder's name is storm split's to give
    def args = task.ext.args ?: ''
    """
    name=\$(storm split --name-only ${StormCli.each('--input', h5ad)} --out-dir . --seed ${meta.seed} ${StormCli.spec(meta)} ${args})
    mkdir \$name
    touch \$name/split.parquet \$name/pairs.csv \$name/summary.json \$name/split.png \$name/split.log
    ${StormCli.stubFiles('split')}
    """
}
