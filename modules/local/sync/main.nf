// The run's results to S3 for collaborators (--sync_to), as a task after the report: every other
// step published before the report ran, and the report's own files come from its task (publishing
// is asynchronous, so they may not have reached --outdir yet). A failed upload fails the run;
// -resume uploads again, skipping what is already there.
process SYNC {
    tag "${destination}"
    label 'process_single'

    input:
    path(report)            // the report folder, from its task
    path(versions)          // pipeline_info/software_versions.yml, from the same task
    val(report_path)        // where the report folder sits under --outdir
    val(outdir)             // --outdir, absolute
    val(destination)        // s3://bucket/results/<run-id>

    output:
    path("sync.log"), emit: log
    tuple val(task.process), eval("cat versions.yml"), emit: versions

    script:
    """
    ${StormCli.call('sync')} ${StormCli.quote(outdir)} ${StormCli.quote(destination)} \\
        --overlay ${report_path}=${report} --overlay pipeline_info/software_versions.yml=${versions}
    """

    stub:
    """
    ${StormCli.stubFiles('sync')}
    """
}
