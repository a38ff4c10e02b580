/*
 * What storm does around the workflows, as nf-core's utils subworkflow: the launch (--help, every
 * parameter and the samplesheet checked, the summary; lib/StormLaunch.groovy), the software versions
 * every step records, and what a run says and does when it ends.
 */

// --help, every parameter and the samplesheet checked (nextflow_schema.json), the launch summary:
// bad parameters stop the run here, before any task starts.
def launchPipeline() {
    return StormLaunch.start(params, workflow, log, projectDir, launchDir)
}

// What the tasks ran, one YAML block per step (a process's simple name) (the packages any of its tasks imported): the text
// (a value channel) that REPORT and LOADER_REPORT write to pipeline_info/software_versions.yml. A task
// writes it rather than collectFile: a failing run aborts while collectFile still sorts, and its
// interrupted LevelDB printed a Java exception under storm's error.
def softwareVersions(channel) {
    return channel
        .map { process, yaml -> [process.tokenize(':').last(), yaml.readLines().findAll { it.contains(':') }
                                           .collectEntries { line -> line.split(':', 2)*.trim() as List }] }
        .toList()
        .map { tasks ->
            def merged = new TreeMap()
            tasks.each { process, versions -> merged.computeIfAbsent(process) { new TreeMap() }.putAll(versions) }
            merged.collect { process, versions -> "${process}:\n" + versions.collect { k, v -> "  ${k}: ${v}" }.join('\n') }
                  .join('\n') + '\n'
        }
}

// The run's last words: storm's error line, or the best model per key metric and the report's path;
// with --sync_to, the results (and a local store) go to S3 for collaborators.
def completion(launch) {
    def P = launch.values
    if (workflow.preview) {
        StormLaunch.removeRunFilesAtExit(P.outdir.toString(), workflow)
        log.info "storm: preview only: the pipeline was planned, nothing ran and no file was written"
        return
    }
    if (workflow.success && P.sync_to) {
        // results for collaborators: storm sync uploads, checksums and indexes them under the run prefix
        def sync = ['storm', 'sync', file(P.outdir).toString(), P.sync_to.toString()].execute()
        sync.consumeProcessOutput(System.out, System.err)
        if (sync.waitFor() != 0) log.error "storm: sync to ${P.sync_to} failed; run it again to resume"
        // the results store beside the synced runs, so collaborators query every run there
        def store = launch.store()
        if (store && !store.startsWith('s3://') && new File(store, 'runs').isDirectory()) {
            def remote = P.sync_to.toString().replaceAll('/+$', '').replaceAll('/[^/]+$', '') + '/storm-store'
            def push = ['storm', 'results', 'push', remote, '--store', store].execute()
            push.consumeProcessOutput(System.out, System.err)
            if (push.waitFor() != 0) log.error "storm: pushing the results store to ${remote} failed; run it again"
        }
    }
    if (!workflow.success) {
        def first = workflow.errorMessage?.readLines()?.find { it.startsWith('error: ') }
        log.info "storm: failed${first ? ': ' + first.substring(7) : ' (see above)'}; fix the cause and re-run with -resume"
    } else if (P.workflow == 'loaders') {
        log.info "storm: done in ${workflow.duration}; report: ${file(P.outdir).toAbsolutePath()}/loaders/report/summary.csv"
    } else {
        def report = file("${P.outdir}/report")
        def leaders = report.resolve('leaders.txt')   // the best model per key metric, per dataset
        if (leaders.exists()) log.info leaders.text.trim()
        log.info "storm: done in ${workflow.duration}; report: ${report.toAbsolutePath()}/report.html"
    }
}

workflow PIPELINE_COMPLETION {
    take:
    launch

    main:
    workflow.onComplete { completion(launch) }
}
