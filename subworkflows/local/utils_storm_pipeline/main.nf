/*
 * What storm does around the workflows, as nf-core's utils subworkflow: the launch (--help, every
 * parameter and the samplesheet checked, the summary; lib/StormLaunch.groovy), the software versions
 * every step records, and what a run says and does when it ends.
 */

include { SYNC       } from '../../../modules/local/sync'
include { STORE_PUSH } from '../../../modules/local/store_push'

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

// The run's last words: storm's error line, or the best model per key metric and the report's path.
def completion(launch) {
    def P = launch.values
    if (workflow.preview) {
        StormLaunch.removeRunFilesAtExit(P.outdir.toString(), workflow)
        log.info "storm: preview only: the pipeline was planned, nothing ran and no file was written"
        return
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

// With --sync_to, the results (and a local store) go to S3 for collaborators: tasks after the report,
// cached, retried and run by the executor like every other step.
workflow RESULTS_TO_S3 {
    take:
    report          // the report folder
    versions        // software_versions.yml
    report_path     // where the report sits under --outdir
    launch

    main:
    def P = launch.values
    SYNC(report, versions, report_path, file(P.outdir).toAbsolutePath().toString(), P.sync_to)
    def store = launch.store()
    if (store && !store.startsWith('s3://')) STORE_PUSH(report, store, launch.syncedStore())
}

workflow PIPELINE_COMPLETION {
    take:
    launch

    main:
    workflow.onComplete { completion(launch) }
}
