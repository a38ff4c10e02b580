/*
 * The loader-strategy benchmark (--workflow loaders): one classifier per strategy, each its own task.
 */

include { LOADER_SYNTH  } from '../modules/local/loader_synth'
include { LOADER_TRAIN  } from '../modules/local/loader_train'
include { LOADER_REPORT } from '../modules/local/loader_report'
include { softwareVersions; RESULTS_TO_S3 } from '../subworkflows/local/utils_storm_pipeline'

workflow LOADERS {
    take:
    launch


    main:
    def P = launch.values
    def strategies = P.loader_strategies.tokenize(',')*.trim()
    if (P.loader_train == 'synthetic') {
        // the last synthetic plate is held out
        plates = LOADER_SYNTH().plates.map { files -> [files.sort { it.name }[0..-2], files.sort { it.name }[-1]] }
        versions = LOADER_SYNTH.out.versions
    } else {
        def train = P.loader_train.tokenize(',')*.trim().collect { file(it, checkIfExists: true) }
        plates = Channel.of([train, file(P.loader_test, checkIfExists: true)])
        versions = Channel.empty()
    }
    LOADER_TRAIN(Channel.fromList(strategies).combine(plates))
    LOADER_REPORT(LOADER_TRAIN.out.result.collect(sort: true), softwareVersions(versions.mix(LOADER_TRAIN.out.versions)))

    if (P.sync_to) RESULTS_TO_S3(LOADER_REPORT.out.report, LOADER_REPORT.out.versions, 'loaders/report', launch)

    emit:
    report = LOADER_REPORT.out.report
}
