#!/usr/bin/env nextflow
/*
 * storm: datasets x split seeds x models -> splits, trained models, predictions, metrics per
 * (cell type, perturbation), and one report. Each step is a `storm` CLI call; see README.md.
 */
nextflow.enable.dsl = 2

include { PERTURBATION } from './workflows/perturbation'
include { LOADERS      } from './workflows/loaders'
include { launchPipeline; PIPELINE_COMPLETION } from './subworkflows/local/utils_storm_pipeline'

launch = launchPipeline()

// --workflow perturbation (default): datasets x seeds x the grid's runs; --workflow loaders: the
// loader-strategy benchmark
workflow {
    if (launch.values.workflow == 'loaders') LOADERS(launch)
    else PERTURBATION(launch)
    PIPELINE_COMPLETION(launch)
}
