process VALIDATE {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(h5ad)

    output:
    tuple val(meta), path(h5ad), path("qc.json"), emit: validated

    script:
    """
    storm validate --input ${h5ad} --out qc.json ${task.ext.spec_args} --models ${params.models}
    """

    stub:
    """
    echo '{}' > qc.json
    """
}
