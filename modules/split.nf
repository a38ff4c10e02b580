process SPLIT {
    tag "${meta.id} seed${meta.seed} ${params.split_strategy}"
    label 'process_low'

    input:
    tuple val(meta), path(h5ad), path(qc)
    path(holdout)   // the manual holdout or split file, when the strategy takes one

    output:
    tuple val(meta), path("seed*", type: 'dir'), emit: split

    script:
    def args = task.ext.args ?: ''
    """
    storm split --input ${h5ad} --out-dir . --seed ${meta.seed} ${task.ext.spec_args} ${args}
    """

    stub:
    def name = params.split_strategy == 'transfer' ? "seed${meta.seed}" : "seed${meta.seed}_${params.split_strategy}"
    """
    mkdir ${name}
    touch ${name}/split.csv ${name}/pairs.csv ${name}/summary.json ${name}/state.toml ${name}/split.png
    """
}
