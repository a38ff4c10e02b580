#!/usr/bin/env nextflow
/*
 * storm: datasets x split seeds x models -> splits, trained models, predictions, metrics per
 * (cell type, perturbation), and one report. Each step is a `storm` CLI call; see README.md.
 */
nextflow.enable.dsl = 2

include { SYNTH    } from './modules/synth'
include { VALIDATE } from './modules/validate'
include { SPLIT    } from './modules/split'
include { PREPARE  } from './modules/prepare'
include { TRAIN    } from './modules/train'
include { PREDICT  } from './modules/predict'
include { REFERENCE } from './modules/reference'
include { EVALUATE } from './modules/evaluate'
include { REPORT   } from './modules/report'
include { LOADER_SYNTH  } from './modules/loader_synth'
include { LOADER_TRAIN  } from './modules/loader_train'
include { LOADER_REPORT } from './modules/loader_report'

// Bad parameters stop the run here, before any task starts.
def parseList(String name, value) {
    def items = value.toString().tokenize(',')*.trim().findAll { it }
    if (!items) error "--${name} is empty; give a comma-separated list"
    if (items.toSet().size() != items.size()) error "--${name} lists a value twice: ${value}"
    return items
}

// what identifies a split of a dataset, whatever the model
def splitKey(meta) {
    return meta.subMap(['id', 'seed', 'split'])
}

def checkParams() {
    if (!params.input && !params.synthetic)
        error "give --input <h5ad[,h5ad...]> or --synthetic (or run -profile test)"
    if (params.input && params.synthetic)
        error "--input and --synthetic exclude each other; choose one"
    def seeds = parseList('split_seeds', params.split_seeds)
    def bad = seeds.findAll { !(it ==~ /\d+/) }
    if (bad) error "--split_seeds must be non-negative integers, got: ${bad.join(', ')}"
    def strategies = ['transfer', 'combo', 'combo_inverse', 'zeroshot', 'manual', 'file']
    if (!(params.split_strategy in strategies))
        error "--split_strategy must be one of ${strategies.join(', ')}, got: ${params.split_strategy}"
    if ((params.split_strategy == 'manual') != (params.manual_holdout as boolean))
        error "--manual_holdout <yaml|csv> goes with --split_strategy manual, and only with it"
    if ((params.split_strategy == 'file') != (params.split_file as boolean))
        error "--split_file <csv> goes with --split_strategy file, and only with it"
    if (!(params.eval_split in ['val', 'test'])) error "--eval_split must be val or test, got: ${params.eval_split}"
    return [seeds*.toInteger(), parseList('models', params.models)]
}

// --workflow perturbation (default): datasets x seeds x models; --workflow loaders: the
// loader-strategy benchmark (one classifier per strategy, each its own task). The model benchmark
// stays in the entry workflow so its processes keep their plain names (TRAIN, not X:TRAIN).
workflow {
    if (params.workflow == 'loaders') {
        LOADERS()
    } else {
        if (params.workflow != 'perturbation') error "--workflow must be perturbation or loaders, got: ${params.workflow}"
        def (seeds, models) = checkParams()

        if (params.synthetic) {
            datasets = SYNTH(Channel.of([id: 'synthetic'])).h5ad
        } else {
            def files = parseList('input', params.input).collect { file(it, checkIfExists: true) }
            def ids = files*.simpleName
            if (ids.toSet().size() != ids.size()) error "--input names two files with the same name: ${ids.join(', ')}"
            datasets = Channel.fromList(files).map { f -> [[id: f.simpleName], f] }
        }

        VALIDATE(datasets)

        // one split per (dataset, seed); its folder's name (seed<N>[_<strategy>]) names it
        split_in = VALIDATE.out.validated
            .combine(Channel.fromList(seeds))
            .map { meta, h5ad, qc, seed -> [meta + [seed: seed], h5ad, qc] }
        def holdout_files = [params.manual_holdout, params.split_file].findAll { it }.collect { file(it, checkIfExists: true) }
        SPLIT(split_in, holdout_files)
        splits = SPLIT.out.split.map { meta, dir -> [meta + [split: dir.name], dir] }

        // prepare once per dataset, choosing genes per split on its training cells
        splits_per_dataset = splits
            .map { meta, dir -> [meta.id, dir] }
            .groupTuple(size: seeds.size())
        prepare_in = VALIDATE.out.validated
            .map { meta, h5ad, qc -> [meta.id, meta, h5ad] }
            .join(splits_per_dataset)
            .map { id, meta, h5ad, dirs -> [meta, h5ad, dirs] }
        PREPARE(prepare_in)

        // the grid: (dataset, seed) x model
        train_in = splits
            .map { meta, dir -> [meta.id, meta, dir] }
            .combine(PREPARE.out.prepared.map { meta, prepared -> [meta.id, prepared] }, by: 0)
            .combine(Channel.fromList(models))
            .map { id, meta, dir, prepared, model -> [meta + [model: model], prepared, dir] }
        TRAIN(train_in)

        predict_in = train_in
            .map { meta, prepared, dir -> [meta, prepared, dir] }
            .join(TRAIN.out.model)
        PREDICT(predict_in)

        // what every model's evaluation of a split shares (real DE, the cell-mean baseline), once
        // per split, from the real cells of the alphabetically first model (all models' are equal)
        REFERENCE(PREDICT.out.prediction
            .map { meta, pred, real -> [splitKey(meta), meta.model, real] }
            .groupTuple(size: models.size())
            .map { key, names, reals -> [key, reals[names.indexOf(names.min())]] })
        evaluate_in = PREDICT.out.prediction
            .map { meta, pred, real -> [splitKey(meta), meta, pred, real] }
            .combine(REFERENCE.out.reference, by: 0)
            .map { key, meta, pred, real, reference -> [meta, pred, real, reference] }
        EVALUATE(evaluate_in)

        REPORT(
            EVALUATE.out.metrics.map { meta, csv -> csv }.collect(),
            TRAIN.out.model.map { meta, dir -> dir }.collect(),
            file(params.outdir).toAbsolutePath().resolve('pipeline_info').toString()
        )
    }
}

workflow LOADERS {
    def strategies = parseList('loader_strategies', params.loader_strategies)
    def known = ['streaming', 'streaming_buffer', 'block_shuffling', 'random', 'block_weighted', 'true_weighted']
    def unknown = strategies.findAll { !(it in known) }
    if (unknown) error "--loader_strategies: unknown ${unknown.join(', ')}; known: ${known.join(', ')}"
    parseList('loader_tasks', params.loader_tasks)
    if (params.synthetic) {
        // the last synthetic plate is held out
        plates = LOADER_SYNTH().plates.map { files -> [files.sort { it.name }[0..-2], files.sort { it.name }[-1]] }
    } else {
        if (!params.loader_train || !params.loader_test)
            error "give --loader_train <h5ad[,h5ad...]> and --loader_test <h5ad> (or --synthetic)"
        def train = parseList('loader_train', params.loader_train).collect { file(it, checkIfExists: true) }
        plates = Channel.of([train, file(params.loader_test, checkIfExists: true)])
    }
    LOADER_TRAIN(Channel.fromList(strategies).combine(plates))
    LOADER_REPORT(LOADER_TRAIN.out.result.collect())
}


workflow.onComplete {
    if (workflow.success && params.sync_to) {
        // results for collaborators: storm sync uploads, checksums and indexes them under the run prefix
        def sync = ['storm', 'sync', file(params.outdir).toString(), params.sync_to.toString()].execute()
        sync.consumeProcessOutput(System.out, System.err)
        if (sync.waitFor() != 0) log.error "storm: sync to ${params.sync_to} failed; run it again to resume"
    }
    if (workflow.success) {
        def report = params.workflow == 'loaders' ? 'loaders/report/summary.csv' : 'report/report.html'
        log.info "storm: done in ${workflow.duration}; report: ${file(params.outdir).toAbsolutePath()}/${report}"
    } else {
        log.info "storm: failed (${workflow.errorMessage ?: 'see above'}); fix the cause and re-run with -resume"
    }
}
