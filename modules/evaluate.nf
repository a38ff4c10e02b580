process EVALUATE {
    tag "${meta.id} ${meta.split} ${meta.model}"
    label 'process_low'

    input:
    tuple val(meta), path(pred), path(real)

    output:
    tuple val(meta), path("metrics.csv"), emit: metrics

    script:
    """
    storm evaluate --pred ${pred} --real ${real} --out metrics.csv \\
        --dataset ${meta.id} --seed ${meta.seed} --model ${meta.model}
    """

    stub:
    """
    echo 'dataset,seed,model,cell_type,perturbation,metric,value' > metrics.csv
    """
}
