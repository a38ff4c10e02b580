// A local results store copied to S3 beside the synced runs (--sync_to), so collaborators query
// every run there; after the report, which appended this run to the store.
process STORE_PUSH {
    tag "${destination}"
    label 'process_single'

    input:
    path(report)            // the report folder: the store holds this run once it exists
    val(store)              // the local store
    val(destination)        // s3://bucket/.../storm-store

    output:
    path("push.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    ${StormCli.call("results push ${StormCli.quote(destination)} --store ${StormCli.quote(store)}", 'push')}
    """

    stub:   // a stub report appends nothing to the store
    """
    ${StormCli.stubFiles('push')}
    """
}
