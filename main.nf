#!/usr/bin/env nextflow
/*
 * storm: datasets x split seeds x models -> splits, trained models, predictions, metrics per
 * (cell type, perturbation), and one report. Each step is a `storm` CLI call; see README.md.
 */
nextflow.enable.dsl = 2

include { SYNTH     } from './modules/synth'
include { CHECK     } from './modules/check'
include { SUBSAMPLE } from './modules/subsample'
include { VALIDATE  } from './modules/validate'
include { SPLIT     } from './modules/split'
include { PREPARE   } from './modules/prepare'
include { GENES     } from './modules/genes'
include { REFERENCE } from './modules/reference'
include { TRAIN     } from './modules/train'
include { PREDICT   } from './modules/predict'
include { EVALUATE  } from './modules/evaluate'
// a sweep's configurations are also scored on the validation pairs, where the report chooses
include { REFERENCE as REFERENCE_VAL } from './modules/reference'
include { PREDICT   as PREDICT_VAL   } from './modules/predict'
include { EVALUATE  as EVALUATE_VAL  } from './modules/evaluate'
include { REPORT    } from './modules/report'
include { LOADER_SYNTH  } from './modules/loader_synth'
include { LOADER_TRAIN  } from './modules/loader_train'
include { LOADER_REPORT } from './modules/loader_report'

// --help, every parameter and the samplesheet checked (nextflow_schema.json), the launch summary:
// bad parameters stop the run here, before any task starts.
launch = StormLaunch.start(params, workflow, log, projectDir, launchDir)

// what identifies a split of a dataset, whatever the model
def splitKey(meta) {
    return meta.subMap(['id', 'seed', 'split'])
}

// each prediction with its split's real cells and reference: [meta, pred, real, reference]
def withReference(predictions, references) {
    return predictions
        .map { meta, pred -> [splitKey(meta), meta, pred] }
        .combine(references.map { meta, real, reference -> [splitKey(meta), real, reference] }, by: 0)
        .map { key, meta, pred, real, reference -> [meta, pred, real, reference] }
}

// What the tasks ran, one YAML block per process (the packages any of its tasks imported): the text
// (a value channel) that REPORT and LOADER_REPORT write to pipeline_info/software_versions.yml. A task
// writes it rather than collectFile: a failing run aborts while collectFile still sorts, and its
// interrupted LevelDB printed a Java exception under storm's error.
def softwareVersions(channel) {
    return channel
        .map { process, yaml -> [process, yaml.readLines().findAll { it.contains(':') }
                                           .collectEntries { line -> line.split(':', 2)*.trim() as List }] }
        .toList()
        .map { tasks ->
            def merged = new TreeMap()
            tasks.each { process, versions -> merged.computeIfAbsent(process) { new TreeMap() }.putAll(versions) }
            merged.collect { process, versions -> "${process}:\n" + versions.collect { k, v -> "  ${k}: ${v}" }.join('\n') }
                  .join('\n') + '\n'
        }
}

// --workflow perturbation (default): datasets x seeds x models; --workflow loaders: the
// loader-strategy benchmark (one classifier per strategy, each its own task). The model benchmark
// stays in the entry workflow so its processes keep their plain names (TRAIN, not X:TRAIN).
workflow {
    if (launch.values.workflow == 'loaders') {
        LOADERS(launch.values)
        return
    }
    def P = launch.values
    def byId = launch.datasets.collectEntries { [it.meta.id, it] }

    if (P.input == 'synthetic') {
        datasets = SYNTH(Channel.of(launch.datasets[0].meta)).h5ad
        versions = SYNTH.out.versions
    } else {
        datasets = Channel.fromList(launch.datasets.collect { [it.meta, file(it.path, checkIfExists: true)] })
        versions = Channel.empty()
    }

    // the grid (models, variants, settings, sweeps), the split options and the dataset's columns:
    // checked before the expensive steps, in a task of its own (a grown grid re-runs this check,
    // nothing upstream); its plan.json is the one reading of the grid
    def holdout_files = [P.manual_holdout, P.split_file].findAll { it }.collect { file(it, checkIfExists: true) }
    CHECK(datasets.map { meta, h5ad -> [meta + [strategy: byId[meta.id].split_strategy], h5ad] }, holdout_files)
    checked = datasets
        .map { meta, h5ad -> [meta.id, meta, h5ad] }
        .join(CHECK.out.plan.map { meta, plan -> [meta.id] })
        .map { id, meta, h5ad -> [meta, h5ad] }
    plan = CHECK.out.plan.first().map { meta, json -> new groovy.json.JsonSlurperClassic().parse(json.toFile()) }

    // some cell types, or a seeded sample of a big screen for a pilot
    def sampling = [P.max_cells_per_pair, P.max_controls_per_cell_type, P.subsample_fraction].any { it != null }
    parts = checked.branch { meta, h5ad ->
        subset: sampling || byId[meta.id].cell_types
        whole: true
    }
    SUBSAMPLE(parts.subset.map { meta, h5ad -> [meta, h5ad, byId[meta.id].cell_types] })
    data = parts.whole.mix(SUBSAMPLE.out.h5ad)

    VALIDATE(data)
    validated = data.join(VALIDATE.out.qc).map { meta, h5ad, qc -> [meta, h5ad] }

    // one split per (dataset, seed); its folder's name (seed<N>[_<strategy>]) names it
    SPLIT(validated.combine(Channel.fromList(launch.seeds))
              .map { meta, h5ad, seed -> [meta + [seed: seed, strategy: byId[meta.id].split_strategy], h5ad] },
          holdout_files)
    splits = SPLIT.out.split.map { meta, dir -> [meta + [split: dir.name], dir] }

    // normalised once per dataset; genes chosen per split on its training cells
    PREPARE(validated, [P.molecule_embeddings].findAll { it }.collect { file(it, checkIfExists: true) })
    per_split = splits
        .map { meta, dir -> [meta.id, meta, dir] }
        .combine(PREPARE.out.prepared.map { meta, prepared -> [meta.id, prepared] }, by: 0)
        .map { id, meta, dir, prepared -> [meta, prepared, dir] }
    GENES(per_split)
    split_data = per_split.join(GENES.out.genes)   // [meta, prepared, split, genes]

    REFERENCE(split_data)

    // the grid: split x training run, each with what CHECK planned for it (model, environment,
    // image, resources, settings), passed through to TRAIN unchanged
    train_in = split_data
        .combine(plan.flatMap { it.runs })
        .map { meta, prepared, dir, genes, run ->
            [meta + [model: run.name, base: run.model, env: run.environment, image: run.image, sweep: run.sweep,
                     settings: run.settings, resources: run.resources], prepared, dir, genes] }
    TRAIN(train_in)
    PREDICT(train_in.join(TRAIN.out.model))
    // other tools' predictions (--predictions), scored on the same real cells as the models
    external = Channel.fromList(launch.predictions)
        .map { p -> [[p.meta.id, p.meta.seed], p.meta, file(p.path, checkIfExists: true)] }
        .combine(REFERENCE.out.reference.map { meta, real, reference -> [[meta.id, meta.seed], meta.split] }, by: 0)
        .map { key, meta, pred, split -> [meta + [split: split], pred] }
    EVALUATE(withReference(PREDICT.out.prediction.mix(external), REFERENCE.out.reference))

    // sweeps: each configuration also predicts the validation pairs; the report chooses on them
    REFERENCE_VAL(split_data.combine(plan.filter { it.sweeps }.map { true })
                            .map { meta, prepared, dir, genes, swept -> [meta, prepared, dir, genes] })
    swept = train_in.join(TRAIN.out.model).filter { meta, prepared, dir, genes, model -> meta.sweep }
    PREDICT_VAL(swept)
    EVALUATE_VAL(withReference(PREDICT_VAL.out.prediction, REFERENCE_VAL.out.reference))

    versions = versions.mix(CHECK.out.versions, SUBSAMPLE.out.versions, VALIDATE.out.versions, SPLIT.out.versions,
                            PREPARE.out.versions, GENES.out.versions, REFERENCE.out.versions, TRAIN.out.versions,
                            PREDICT.out.versions, EVALUATE.out.versions, REFERENCE_VAL.out.versions,
                            PREDICT_VAL.out.versions, EVALUATE_VAL.out.versions)
    REPORT(
        EVALUATE.out.metrics.map { meta, csv -> csv }.collect(sort: true),
        TRAIN.out.model.map { meta, dir -> dir }.collect(sort: true),
        VALIDATE.out.qc.map { meta, qc -> qc }.collect(sort: true),
        EVALUATE.out.cells.collect(sort: true),
        launch.runInfo(),
        softwareVersions(versions),
        file(P.outdir).toAbsolutePath().resolve('pipeline_info').toString(),
        launch.store() ?: '',
        EVALUATE_VAL.out.metrics.map { meta, csv -> csv }.collect(sort: true).ifEmpty([])
    )
}

workflow LOADERS {
    take:
    P

    main:
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
}

workflow.onComplete {
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
