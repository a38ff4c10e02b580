// A sharded dataset's qc.json: its shards' summed, the memory of the later steps sized for the
// whole dataset. A dataset of one file keeps VALIDATE's.
process COMBINE_QC {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(shard_qc, stageAs: 'shards/?/*')   // the shards' qc.json, in order

    output:
    tuple val(meta), path("qc.json"), emit: qc
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    ${StormCli.call('combine-qc')} ${StormCli.each('--shard', shard_qc)} --dataset ${meta.id} --out qc.json ${task.ext.args ?: ''}
    """

    stub:
    """
    echo '{}' > qc.json; ${StormCli.stubFiles('combine-qc')}
    """
}
