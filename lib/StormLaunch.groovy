import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Path

/**
 * Everything storm does before the first task: `--help`, the check of every parameter and of
 * the samplesheet (all errors at once, one `error:` line each, exit status 2), the refusal of an
 * --outdir that holds another run's results, the summary printed at launch, and
 * `pipeline_info/params.json` and `run.json`.
 */
class StormLaunch {

    final StormSchema schema
    final Map values        // every parameter, typed (see StormSchema.check)
    final List<Map> datasets
    final List<Integer> seeds
    final Map provenance    // storm and Nextflow versions, commit: what the report cites
    List<Map> predictions = []   // --predictions: other tools' predictions, scored beside the models

    private StormLaunch(StormSchema schema, Map values, List<Map> datasets, List<Integer> seeds, Map provenance) {
        this.schema = schema; this.values = values; this.datasets = datasets
        this.seeds = seeds; this.provenance = provenance
    }

    static StormLaunch start(Map params, workflow, log, Path projectDir, Path launchDir) {
        def schema = new StormSchema(projectDir.resolve('nextflow_schema.json'))
        if (params.help) {
            println schema.help(params.help.toString())
            System.exit(0)
        }
        def checked = schema.check(params, launchDir)
        def values = checked.values
        def errors = checked.errors
        def seeds = [], models = [], datasets = [], predictions = []
        if (!errors) {
            if (values.workflow == 'perturbation') {
                seeds = list(values, 'split_seeds', errors)*.toInteger()
                models = list(values, 'models', errors)
                if (!values.input) errors << 'give --input <h5ad | samplesheet.csv | synthetic> (or run -profile test)'
                else {
                    def read = Samplesheet.read(values.input, values, schema, launchDir)
                    errors.addAll(read.errors)
                    datasets = read.datasets
                }
                if (values.predictions && !errors) {
                    def read = Samplesheet.readPredictions(values.predictions.toString(), datasets*.meta*.id, seeds,
                                                           models*.tokenize('=')*.first()*.trim(), schema.idPattern(), launchDir)
                    errors.addAll(read.errors)
                    predictions = read.predictions
                }
                if (values.predict_models && !values.predict_conditions)
                    errors << '--predict_models chooses the models for --predict_conditions: give that too'
                if (values.predict_conditions && !errors) errors.addAll(conditionsErrors(values, datasets*.meta*.id))
                def strategies = datasets*.split_strategy.unique()
                // a strategy that reads a file, and the parameter naming it (the schema's split_strategy key)
                schema.properties.findAll { param, spec -> spec.split_strategy }.each { param, spec ->
                    def strategy = spec.split_strategy
                    if ((strategy in strategies) && !values[param])
                        errors << "the ${strategy} split strategy needs --${param}".toString()
                    if (values[param] && !(strategy in strategies))
                        errors << "--${param} goes with the ${strategy} split strategy, which no dataset uses".toString()
                }
            } else {
                list(values, 'loader_strategies', errors)
                list(values, 'loader_tasks', errors)
                if (!values.loader_train) errors << 'give --loader_train <h5ad[,h5ad...]> and --loader_test <h5ad> (or --loader_train synthetic)'
                else if (values.loader_train != 'synthetic' && !values.loader_test) errors << 'give --loader_test <h5ad>: the plate the classifier is scored on'
            }
        }
        if (values.sync_to && values.outdir.toString().startsWith('s3://'))
            errors << "--sync_to uploads a local --outdir; with --outdir on S3, copy the results there with aws s3 sync".toString()
        if (!errors && !workflow.preview) errors.addAll(claimOutdir(values.outdir.toString(), workflow))
        if (errors) {
            errors.each { System.err.println("error: ${it}") }
            removeRunFilesAtExit(values.outdir?.toString() ?: params.outdir.toString(), workflow)
            System.exit(2)
        }
        def provenance = [storm: workflow.manifest.version, commit: commit(projectDir),
                          nextflow: workflow.nextflow.version.toString(), session: workflow.sessionId.toString(),
                          profile: workflow.profile]   // what a -resume keeps: REPORT's inputs stay cached
        def launch = new StormLaunch(schema, values, datasets, seeds, provenance)
        launch.predictions = predictions
        log.info launch.summary(workflow)
        if (!workflow.preview) launch.writeParams()
        return launch
    }

    /** --predict_conditions' dataset column (the rest is CHECK's, per dataset): it names datasets of the run. */
    private static List<String> conditionsErrors(Map values, List ids) {
        def path = values.predict_conditions.toString()
        def lines = nextflow.Nextflow.file(path).readLines()
        def header = lines ? lines[0].split(',', -1)*.trim() : []
        def column = header.indexOf('dataset')
        if (column < 0) return []
        def unknown = lines.drop(1).findAll { it.trim() }.collect { it.split(',', -1) }
            .collect { it.size() > column ? it[column].trim() : '' }.findAll { !(it in ids) }.unique()
        return unknown ? ["--predict_conditions: dataset '${unknown[0]}' is not one of this run's (${ids.join(', ')})".toString()] : []
    }

    /** A comma-separated parameter as a list, its duplicates reported. */
    private static List<String> list(Map values, String name, List errors) {
        def items = values[name].toString().tokenize(',')*.trim().findAll { it }
        if (!items) errors << "--${name} is empty; give a comma-separated list".toString()
        def twice = items.findAll { items.count(it) > 1 }.unique()
        if (twice) errors << "--${name} lists ${twice.join(', ')} twice".toString()
        return items
    }

    /**
     * An --outdir belongs to one run (session): a new run refuses another run's results, so old
     * and new outputs never mix; `-resume` continues (or grows) the run that owns it.
     */
    private static List<String> claimOutdir(String outdir, workflow) {
        def marker = nextflow.Nextflow.file("${outdir}/pipeline_info/run.json")
        def session = workflow.sessionId.toString()
        def owner = marker.exists() ? new JsonSlurper().parseText(marker.text) : null
        if (owner?.session == session) return []
        // a run that published nothing (it stopped at a bad input) leaves nothing to protect
        def root = marker.parent.parent
        def results = root.exists() ? root.list().findAll { it != 'pipeline_info' } : []
        if (owner && results)
            return ["--outdir ${outdir} holds the results of run '${owner.run_name}' (started ${owner.started}); " +
                    "continue or grow that run with -resume from the folder it was launched in, or choose another --outdir".toString()]
        if (results)
            return ["--outdir ${outdir} already holds files (${results.sort().take(3).join(', ')}) that no storm run claims; " +
                    "choose another --outdir".toString()]
        marker.parent.mkdirs()
        marker.text = JsonOutput.prettyPrint(JsonOutput.toJson(
            [session: session, run_name: workflow.runName, started: workflow.start.toString(),
             launch_dir: workflow.launchDir.toString()])) + '\n'
        return []
    }

    /**
     * Nextflow writes its trace when a run starts and its execution report and timeline when it
     * ends: a run stopped at launch, or a -preview, leaves none of them (nor the folders made for
     * them). Runs when the JVM exits, after Nextflow has written them.
     */
    static void removeRunFilesAtExit(String outdir, workflow) {
        def since = workflow.start.toInstant().toEpochMilli() - 1000
        Runtime.runtime.addShutdownHook(new Thread({
            def info = nextflow.Nextflow.file("${outdir}/pipeline_info")
            if (!info.exists()) return
            info.listFiles().findAll { it.name.startsWith('execution_') && it.lastModified() >= since }*.delete()
            if (!info.list()) {
                info.delete()
                if (!info.parent.list()) info.parent.delete()
            }
        }))
    }

    private static String commit(Path projectDir) {
        try {
            def git = ['git', '-C', projectDir.toString(), 'describe', '--always', '--dirty', '--abbrev=12'].execute()
            git.waitFor()
            return git.exitValue() == 0 ? git.text.trim() : ''
        } catch (IOException ignored) {
            return ''
        }
    }

    /** The resolved parameters, written once to pipeline_info (only when they change, so its
     *  timestamp stays put on a plain -resume). */
    void writeParams() {
        def file = nextflow.Nextflow.file("${values.outdir}/pipeline_info/params.json")
        def text = JsonOutput.prettyPrint(JsonOutput.toJson(values.findAll { k, v -> k != 'help' })) + '\n'
        if (!file.exists() || file.text != text) file.text = text
    }

    /** The results store this run appends to (absolute), or null for `--store none`. */
    String store() {
        def given = values.store?.toString()
        if (given == 'none') return null
        if (given) return given.startsWith('s3://') ? given : new File(given).absoluteFile.toString()
        def outdir = values.outdir.toString().replaceAll('/+$', '')
        if (outdir.startsWith('s3://')) return outdir.substring(0, outdir.lastIndexOf('/')) + '/storm-store'
        return new File(outdir).absoluteFile.parentFile.toPath().resolve('storm-store').toString()
    }

    /** Where --sync_to's store goes: storm-store beside the synced runs (s3://b/results/run1 ->
     *  s3://b/results/storm-store), so collaborators query every synced run there. */
    String syncedStore() {
        values.sync_to.toString().replaceAll('/+$', '').replaceAll('/[^/]+$', '') + '/storm-store'
    }

    /** What a report cites about this run: versions, commit, parameters and datasets, as JSON. */
    String runInfo() {
        JsonOutput.toJson(provenance + [params: values.findAll { k, v -> k != 'help' }, datasets: datasets])
    }

    /** The launch summary: the datasets and every parameter that differs from its default. */
    String summary(workflow) {
        def lines = ["storm ${provenance.storm} (${provenance.commit ?: 'no git commit'}), Nextflow ${provenance.nextflow}, " +
                     "profile ${workflow.profile}"]
        datasets.each { d ->
            def spec = d.meta.spec.findAll { k, v -> v != null }.collect { k, v -> "${k}=${v}" }.join(' ')
            def subset = d.cell_types ? " cell_types=${d.cell_types.join(',')}" : ''
            def files = !d.paths ? 'storm synth' : d.paths.size() == 1 ? d.paths[0] : "${d.paths.size()} shards, ${d.paths[0]} ..."
            lines << "  dataset ${d.meta.id}: ${files} (${spec}; ${d.split_strategy}${subset})".toString()
        }
        def changed = values.findAll { name, value ->
            def spec = schema.properties[name]
            value != null && value != '' && value != spec.default && name != 'help'
        }
        def width = (changed.keySet()*.size() + [8]).max()
        changed.each { name, value -> lines << "  ${name.padRight(width)} : ${value}".toString() }
        return lines.join('\n')
    }
}
