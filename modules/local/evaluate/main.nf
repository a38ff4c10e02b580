process EVALUATE {
    tag "${meta.id} ${meta.split} ${meta.model}"
    label 'process_single'

    input:
    tuple val(meta), path(pred), path(real), path(reference)

    output:
    tuple val(meta), path("metrics.csv"), emit: metrics
    path("cells.h5ad"), emit: cells   // a sample of predicted and real cells: the report's cell map
    path("evaluate.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${StormCli.call('evaluate')} --pred ${pred} --real ${real} --reference ${reference} --out metrics.csv --cells-out cells.h5ad \\
        --dataset ${meta.id} --seed ${meta.seed} --model '${meta.model}' --threads ${task.cpus} ${args}
    """

    stub:
    """
    echo 'dataset,seed,model,cell_type,perturbation,metric,value' > metrics.csv; touch cells.h5ad; ${StormCli.stubFiles('evaluate')}
    """
}
