process LOADER_TRAIN {
    tag "${strategy}"
    label 'process_low'

    input:
    tuple val(strategy), path(train, stageAs: 'train/*'), path(test, stageAs: 'test/*')

    output:
    path("${strategy}"), emit: result
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    def train_args = train.collect { "--train ${it}" }.join(' ')
    """
    export OMP_NUM_THREADS=${task.cpus}
    ${StormCli.call('loaders train')} ${train_args} --test ${test} --set strategy=${strategy} --out-dir ${strategy} ${args}
    mv train.log ${strategy}/
    """

    stub:
    """
    mkdir ${strategy}
    touch ${strategy}/summary.json ${strategy}/metrics.csv ${strategy}/train_log.csv ${strategy}/train.log
    ${StormCli.stubFiles('train')}
    """
}
