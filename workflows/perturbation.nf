/*
 * The perturbation benchmark: datasets x split seeds x the grid's training runs -> splits, trained
 * models, predictions, metrics per (cell type, perturbation), and one report.
 */

include { SYNTH     } from '../modules/local/synth'
include { CHECK     } from '../modules/local/check'
include { SUBSAMPLE } from '../modules/local/subsample'
include { VALIDATE  } from '../modules/local/validate'
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

workflow PERTURBATION {
    take:
    launch   // StormLaunch: the checked parameters, datasets, seeds and predictions

    main:
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
    // [meta, h5ad, qc]: every later task carries the memory VALIDATE sized for its step
    validated = data.join(VALIDATE.out.qc).map { meta, h5ad, qc ->
        [meta + [memory: new groovy.json.JsonSlurperClassic().parse(qc.toFile()).memory ?: [:]], h5ad, qc] }

    // one split per (dataset, seed); its folder's name (seed<N>[_<strategy>]) names it
    SPLIT(validated.combine(Channel.fromList(launch.seeds))
              .map { meta, h5ad, qc, seed -> [meta + [seed: seed, strategy: byId[meta.id].split_strategy], h5ad] },
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

    if (P.sync_to) RESULTS_TO_S3(REPORT.out.report, REPORT.out.versions, 'report', launch)

    emit:
    report = REPORT.out.report
}
