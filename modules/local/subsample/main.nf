process SUBSAMPLE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(h5ad, stageAs: 'input/*'), val(cell_types)

    output:
    tuple val(meta), path("subsample.h5ad"), emit: h5ad
    tuple path("subsample.json"), path("subsample.log"), emit: summary
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    def args = task.ext.args ?: ''
    def keep = cell_types ? "--cell-types ${StormCli.quote(cell_types.join(','))}" : ''
    """
    ${StormCli.call('subsample')} --input ${h5ad} ${StormCli.spec(meta)} ${keep} --out subsample.h5ad ${args}
    """

    stub:
    """
    touch subsample.h5ad subsample.json; ${StormCli.stubFiles('subsample')}
    """
}
