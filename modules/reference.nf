process REFERENCE {
    tag "${meta.id} ${meta.split}"
    label 'process_medium'

    input:
    tuple val(meta), path(real)

    output:
    tuple val(meta), path("reference"), emit: reference

    script:
    def args = task.ext.args ?: ''
    """
    storm reference --real ${real} --out-dir reference --threads ${task.cpus} ${args}
    """

    stub:
    """
    mkdir reference
    touch reference/baseline_agg.csv
    """
}
