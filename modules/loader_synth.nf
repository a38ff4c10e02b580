process LOADER_SYNTH {
    label 'process_low'

    output:
    path("plates/*.h5ad"), emit: plates

    script:
    def args = task.ext.args ?: ''
    """
    storm loaders synth --out-dir plates ${args}
    """

    stub:
    """
    mkdir plates
    touch plates/plate0.h5ad plates/plate1.h5ad plates/plate2.h5ad
    """
}
