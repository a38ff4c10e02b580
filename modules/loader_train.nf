process LOADER_TRAIN {
    tag "${strategy}"
    label 'process_medium'

    input:
    tuple val(strategy), path(train, stageAs: 'train/*'), path(test, stageAs: 'test/*')

    output:
    path("${strategy}"), emit: result

    script:
    def args = task.ext.args ?: ''
    def train_args = train.collect { "--train ${it}" }.join(' ')
    """
    export OMP_NUM_THREADS=${task.cpus}
    storm loaders train ${train_args} --test ${test} --set strategy=${strategy} --out-dir ${strategy} ${args}
    """

    stub:
    """
    mkdir ${strategy}
    touch ${strategy}/summary.json ${strategy}/metrics.csv ${strategy}/train_log.csv
    """
}
