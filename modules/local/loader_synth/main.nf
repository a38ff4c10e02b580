process LOADER_SYNTH {
    label 'process_single'

    output:
    path("plates/*.h5ad"), emit: plates
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    ${StormCli.call('loaders synth')} --out-dir plates ${args}
    """

    stub:
    """
    mkdir plates
    touch plates/plate0.h5ad plates/plate1.h5ad plates/plate2.h5ad; ${StormCli.stubFiles('synth')}
    """
}
