process TRAIN {
    tag "${meta.id} ${meta.split} ${meta.model}"
    label 'process_medium'
    label 'process_gpu'   // sized and given a GPU by -profile gpu only

    input:
    tuple val(meta), path(prepared, stageAs: 'prepared/*'), path(split), path(genes)

    output:
    tuple val(meta), path("model"), emit: model
    path("train.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    export OMP_NUM_THREADS=${task.cpus}
    ${StormCli.call('train')} ${StormCli.each('--prepared', prepared)} --split ${split}/split.parquet --genes ${genes} \\
        --model ${meta.base} --name '${meta.model}' --out-dir model --seed ${meta.seed} --dataset ${meta.id} ${args}
    """

    stub:
    // the settings' words as storm train would get them, one a line: what a -stub-run shows of the grid
    def args = task.ext.args ?: ''
    """
    mkdir model
    echo '{}' > model/model.json; printf '%s\\n' ${args} > model/args.txt; ${StormCli.stubFiles('train')}
    """
}
