// Per split, what every model's evaluation shares: the real held-out cells (real.h5ad, written
// once here), their differential expression and the cell-mean baseline's metrics.
process REFERENCE {
    tag "${meta.id} ${meta.split}"
    label 'process_low'

    input:
    tuple val(meta), path(prepared, stageAs: 'prepared/*'), path(split), path(genes)

    output:
    tuple val(meta), path("real.h5ad"), path("reference"), emit: reference
    path("reference.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${StormCli.call('reference')} ${StormCli.each('--prepared', prepared)} --split ${split}/split.parquet --genes ${genes} \\
        --out-dir . --threads ${task.cpus} ${args}
    """

    stub:
    """
    mkdir reference
    touch real.h5ad reference/baseline_agg.csv; ${StormCli.stubFiles('reference')}
    """
}
