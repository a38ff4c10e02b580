/*
 * The perturbation benchmark: datasets x split seeds x the grid's training runs -> splits, trained
 * models, predictions, metrics per (cell type, perturbation), and one report.
 */

include { SYNTH     } from '../modules/local/synth'
include { CHECK     } from '../modules/local/check'
include { SUBSAMPLE } from '../modules/local/subsample'
include { VALIDATE  } from '../modules/local/validate'
include { COMBINE_QC } from '../modules/local/combine_qc'
include { SPLIT     } from '../modules/local/split'
include { PREPARE   } from '../modules/local/prepare'
include { GENES     } from '../modules/local/genes'
include { REFERENCE } from '../modules/local/reference'
include { TRAIN     } from '../modules/local/train'
include { PREDICT   } from '../modules/local/predict'
include { EVALUATE  } from '../modules/local/evaluate'
// a sweep's configurations are also scored on the validation pairs, where the report chooses
include { REFERENCE as REFERENCE_VAL } from '../modules/local/reference'
include { PREDICT   as PREDICT_VAL   } from '../modules/local/predict'
include { EVALUATE  as EVALUATE_VAL  } from '../modules/local/evaluate'
include { VERDICT   } from '../modules/local/verdict'
// the models for new conditions (--predict_conditions): retrained on every cell, then asked
include { SPLIT     as SPLIT_NEW     } from '../modules/local/split'
include { GENES     as GENES_NEW     } from '../modules/local/genes'
include { TRAIN     as TRAIN_NEW     } from '../modules/local/train'
include { PREDICT_NEW } from '../modules/local/predict_new'
include { REPORT    } from '../modules/local/report'
include { softwareVersions; RESULTS_TO_S3 } from '../subworkflows/local/utils_storm_pipeline'

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

// what a training run of CHECK's plan adds to its split's meta (model, environment, image,
// resources, settings), passed through to TRAIN unchanged
def runMeta(run) {
    return [model: run.name, base: run.model, env: run.environment, image: run.image, sweep: run.sweep,
            settings: run.settings, resources: run.resources]
}

// the memory VALIDATE sized per step for a dataset (or a shard), from its qc.json ({} for a stub's)
def memoryOf(qc) {
    return new groovy.json.JsonSlurperClassic().parse(qc.toFile()).memory ?: [:]
}

// [shard meta, item] per shard -> [dataset meta, [item of each shard, in the shards' order]], each
// dataset as soon as its shards are in
def inOrder(perShard) {
    return perShard
        .map { meta, item -> [groupKey(meta.id, meta.shards), meta, item] }
        .groupTuple()
        .map { id, metas, items ->
            [metas[0].findAll { key, value -> !(key in ['shard', 'shard_index', 'shards', 'memory']) },
             [metas*.shard_index, items].transpose().sort { it[0] }*.getAt(1)] }
}

workflow PERTURBATION {
    take:
    launch   // StormLaunch: the checked parameters, datasets, seeds and predictions

    main:
    def P = launch.values
    def byId = launch.datasets.collectEntries { [it.meta.id, it] }

    // [meta, [h5ad]]: a dataset is one file or its shards in order (Tahoe's plates)
    if (P.input == 'synthetic') {
        datasets = SYNTH(Channel.of(launch.datasets[0].meta)).h5ad.map { meta, h5ad -> [meta, [h5ad]] }
        versions = SYNTH.out.versions
    } else {
        datasets = Channel.fromList(launch.datasets.collect { [it.meta, it.paths.collect { p -> file(p, checkIfExists: true) }] })
        versions = Channel.empty()
    }

    // the grid (models, variants, settings, sweeps), the split options and the dataset's columns
    // (its first shard's): checked before the expensive steps, in a task of its own (a grown grid
    // re-runs this check, nothing upstream); its plan.json is the one reading of the grid
    def holdout_files = [P.manual_holdout, P.split_file].findAll { it }.collect { file(it, checkIfExists: true) }
    def conditions_file = [P.predict_conditions].findAll { it }.collect { file(it, checkIfExists: true) }
    CHECK(datasets.map { meta, files -> [meta + [strategy: byId[meta.id].split_strategy], files[0],
                                         P.predict_conditions && files.size() > 1 ? files : []] },
          holdout_files + conditions_file)
    checked = datasets
        .map { meta, files -> [meta.id, meta, files] }
        .join(CHECK.out.plan.map { meta, plan -> [meta.id] })
        .map { id, meta, files -> [meta, files] }
    plan = CHECK.out.plan.first().map { meta, json -> new groovy.json.JsonSlurperClassic().parse(json.toFile()) }

    // one task per shard from here to PREPARE (on a cluster, on many nodes at once): [shard meta,
    // h5ad, the dataset's shards (for what is decided on the whole dataset; none when it is one file)]
    shards = checked.flatMap { meta, files ->
        files.withIndex().collect { f, i -> [meta + [shard: f.baseName, shard_index: i, shards: files.size()], f,
                                             files.size() > 1 ? files : []] } }

    // some cell types, or a seeded sample of a big screen for a pilot (drawn on the whole dataset)
    def sampling = [P.max_cells_per_pair, P.max_controls_per_cell_type, P.subsample_fraction].any { it != null }
    parts = shards.branch { meta, h5ad, all ->
        subset: sampling || byId[meta.id].cell_types
        whole: true
    }
    SUBSAMPLE(parts.subset.map { meta, h5ad, all -> [meta, h5ad, all, byId[meta.id].cell_types] })
    data = parts.whole.map { meta, h5ad, all -> [meta, h5ad] }.mix(SUBSAMPLE.out.h5ad)

    VALIDATE(data)
    // [shard meta, h5ad, qc]: each shard carries the memory VALIDATE sized for its own steps
    validated = data.join(VALIDATE.out.qc).map { meta, h5ad, qc -> [meta + [memory: memoryOf(qc)], h5ad, qc] }

    // the dataset again, its shards in order: [meta, [h5ad], qc]; a sharded dataset's qc.json
    // sums its shards' and sizes the later steps for the whole
    gathered = inOrder(validated.map { meta, h5ad, qc -> [meta, [h5ad, qc]] })
        .map { meta, pairs -> [meta, pairs*.getAt(0), pairs*.getAt(1)] }
    COMBINE_QC(gathered.filter { meta, files, qcs -> files.size() > 1 }.map { meta, files, qcs -> [meta, qcs] })
    dataset_qc = gathered.filter { meta, files, qcs -> files.size() == 1 }.map { meta, files, qcs -> [meta, qcs[0]] }
        .mix(COMBINE_QC.out.qc)
    dataset = gathered.map { meta, files, qcs -> [meta.id, meta, files] }
        .join(dataset_qc.map { meta, qc -> [meta.id, qc] })
        .map { id, meta, files, qc -> [meta + [memory: memoryOf(qc)], files] }

    // one split per (dataset, seed); its folder's name (seed<N>[_<strategy>]) names it
    SPLIT(dataset.combine(Channel.fromList(launch.seeds))
              .map { meta, files, seed -> [meta + [seed: seed, strategy: byId[meta.id].split_strategy], files,
                                           holdout_files] })
    splits = SPLIT.out.split.map { meta, dir -> [meta + [split: dir.name], dir] }

    // normalised once per shard (a chemical screen's shards each get the whole dataset's compounds);
    // genes chosen per split on its training cells
    def chemical = { meta -> meta.spec.smiles_key || P.molecule_embeddings }
    PREPARE(validated
                .map { meta, h5ad, qc -> [meta.id, meta, h5ad, qc] }
                .combine(gathered.map { meta, files, qcs -> [meta.id, files] }, by: 0)
                .map { id, meta, h5ad, qc, files -> [meta, h5ad, qc, files.size() > 1 && chemical(meta) ? files : []] },
            [P.molecule_embeddings].findAll { it }.collect { file(it, checkIfExists: true) })
    prepared = inOrder(PREPARE.out.prepared).map { meta, files -> [meta.id, files] }
    per_split = splits
        .map { meta, dir -> [meta.id, meta, dir] }
        .combine(prepared, by: 0)
        .map { id, meta, dir, files -> [meta, files, dir] }
    GENES(per_split)
    split_data = per_split.join(GENES.out.genes)   // [meta, prepared, split, genes]

    REFERENCE(split_data)

    // the grid: split x training run, each with what CHECK planned for it (model, environment,
    // image, resources, settings), passed through to TRAIN unchanged
    train_in = split_data
        .combine(plan.flatMap { it.runs })
        .map { meta, prepared, dir, genes, run -> [meta + runMeta(run), prepared, dir, genes] }
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

    // per dataset, whether any model beats every baseline, before the report says so
    test_metrics = EVALUATE.out.metrics.map { meta, csv -> csv }.collect(sort: true)
    val_metrics = EVALUATE_VAL.out.metrics.map { meta, csv -> csv }.collect(sort: true).ifEmpty([])
    VERDICT(test_metrics, val_metrics, CHECK.out.plan.first().map { meta, json -> json })

    // new conditions: per dataset that CHECK found requested, the chosen runs (--predict_models,
    // else the verdict's predict_with) retrain on one split that holds out only the requested
    // conditions the data measures (none held out: strategy none), once per seed, then predict them
    requested = CHECK.out.conditions.map { meta, table, holdout -> [meta.id, table, holdout] }
    new_splits = dataset.map { meta, files -> [meta.id, meta, files] }
        .join(requested)
        .map { id, meta, files, table, holdout ->
            def measured = holdout.readLines().size() > 1
            [meta + [seed: launch.seeds[0], strategy: measured ? 'manual' : 'none', holdout: holdout.name,
                     split: 'new_conditions'], files, [holdout]] }
    SPLIT_NEW(new_splits)
    new_split_data = SPLIT_NEW.out.split.map { meta, dir -> [meta.id, meta, dir] }
        .combine(prepared, by: 0)
        .map { id, meta, dir, files -> [meta, files, dir] }
    GENES_NEW(new_split_data)
    chosen = P.predict_models
        ? requested.map { id, table, holdout -> [id, P.predict_models.toString().tokenize(',')*.trim()] }
        : VERDICT.out.verdict.splitCsv(header: true)
            .filter { row ->
                if (!row.predict_with) log.warn "storm: no model of the grid has a calibrated score on ${row.dataset}: " +
                                                "name the ones to predict its new conditions with --predict_models"
                row.predict_with }
            .map { row -> [row.dataset, [row.predict_with]] }
    new_runs = chosen
        .combine(plan)
        .flatMap { id, names, grid -> grid.runs.findAll { it.name in names }.collect { [id, it] } }
    train_new_in = new_split_data.join(GENES_NEW.out.genes)
        .map { meta, prepared, dir, genes -> [meta.id, meta, prepared, dir, genes] }
        .combine(new_runs, by: 0)
        .combine(Channel.fromList(launch.seeds))
        .map { id, meta, prepared, dir, genes, run, seed ->
            [meta + [seed: seed, split: "new_conditions/seed${seed}"] + runMeta(run), prepared, dir, genes] }
    TRAIN_NEW(train_new_in)
    PREDICT_NEW(train_new_in.join(TRAIN_NEW.out.model)
        .map { meta, prepared, dir, genes, model ->
            [groupKey([meta.id, meta.model], launch.seeds.size()),
             meta.subMap(['id', 'spec', 'memory', 'model', 'env', 'image']), prepared, dir, genes, model] }
        .groupTuple()
        .map { key, metas, prepareds, dirs, genes, models -> [metas[0].id, metas[0], prepareds[0], dirs[0], genes[0], models] }
        .combine(requested.map { id, table, holdout -> [id, table] }, by: 0)
        .map { id, meta, prepared, dir, genes, models, table -> [meta, prepared, dir, genes, models, table] })

    versions = versions.mix(CHECK.out.versions, SUBSAMPLE.out.versions, VALIDATE.out.versions, COMBINE_QC.out.versions,
                            SPLIT.out.versions,
                            PREPARE.out.versions, GENES.out.versions, REFERENCE.out.versions, TRAIN.out.versions,
                            PREDICT.out.versions, EVALUATE.out.versions, REFERENCE_VAL.out.versions,
                            PREDICT_VAL.out.versions, EVALUATE_VAL.out.versions, VERDICT.out.versions,
                            SPLIT_NEW.out.versions, GENES_NEW.out.versions, TRAIN_NEW.out.versions,
                            PREDICT_NEW.out.versions)
    REPORT(
        test_metrics,
        TRAIN.out.model.map { meta, dir -> dir }.collect(sort: true),
        dataset_qc.map { meta, qc -> qc }.collect(sort: true),
        EVALUATE.out.cells.collect(sort: true),
        launch.runInfo(),
        softwareVersions(versions),
        file(P.outdir).toAbsolutePath().resolve('pipeline_info').toString(),
        launch.store() ?: '',
        val_metrics,
        VERDICT.out.verdict,
        PREDICT_NEW.out.table.map { meta, csv -> csv }.collect(sort: true).ifEmpty([])
    )

    if (P.sync_to) RESULTS_TO_S3(REPORT.out.report, REPORT.out.versions, 'report', launch)

    emit:
    report = REPORT.out.report
}
