// The genes of one split, chosen on its training cells only (one task per split, so a new seed
// never changes what an existing split trained on).
process GENES {
    tag "${meta.id} ${meta.split}"
    label 'process_single'

    input:
    tuple val(meta), path(prepared, stageAs: 'prepared/*'), path(split)

    output:
    tuple val(meta), path("genes.csv"), emit: genes
    path("genes.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${StormCli.call('genes')} ${StormCli.each('--prepared', prepared)} --split ${split}/split.parquet --out genes.csv ${args}
    """

    stub:
    """
    echo gene > genes.csv; ${StormCli.stubFiles('genes')}
    """
}
