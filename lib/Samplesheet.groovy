import groovy.yaml.YamlSlurper
import java.nio.file.Files
import java.nio.file.Path

/**
 * The datasets of a run, from `--input`: one h5ad (or several, comma-separated) described by the
 * global parameters, a samplesheet (CSV, TSV or YAML) with one row per dataset, or `synthetic`.
 *
 * A samplesheet has `id` and `path` and may set, per dataset, any parameter that
 * assets/schema_input.json lists (the dataset spec, `split_strategy`, `cell_types`). A left-out column takes the
 * global parameter; a blank cell takes it too, except in an optional column (`blank=none`:
 * batch, dose, time, SMILES, embedding, cell types), where blank, like `none`, means the dataset
 * has none. Relative paths are relative to the samplesheet's folder.
 */
class Samplesheet {

    /** [datasets: [[meta: [id, spec], path, split_strategy, cell_types]], errors: [line]] */
    static Map read(String input, Map values, StormSchema schema, Path launchDir) {
        def errors = []
        def rows
        def where = { i -> "--input" }
        def base = launchDir
        if (input == 'synthetic') {
            // storm synth writes the default columns, whatever the global spec says
            def defaults = schema.group('dataset_spec').collectEntries { k, spec -> [k, spec.default] }
            rows = [[id: 'synthetic', path: null] + defaults]
        } else if (input ==~ /(?i).*\.(csv|tsv|ya?ml)$/) {
            def sheet = launchDir.resolve(input)
            if (!Files.isRegularFile(sheet)) return [datasets: [], errors: ["--input: no such samplesheet: ${input}".toString()]]
            base = sheet.parent
            try {
                rows = input ==~ /(?i).*\.ya?ml$/ ? yamlRows(sheet) : tableRows(sheet, input ==~ /(?i).*\.tsv$/ ? '\t' : ',')
            } catch (Exception e) {
                return [datasets: [], errors: ["--input ${input}: cannot read the samplesheet: ${e.message}".toString()]]
            }
            where = { i -> "samplesheet ${sheet.fileName} row ${i + 1}" }
            if (!rows) errors << "samplesheet ${input} has no rows".toString()
            def columns = rows ? rows*.keySet().flatten().unique() : []
            def known = ['id', 'path'] + schema.samplesheetColumns().keySet()
            columns.findAll { !(it in known) }.each { col ->
                def near = known.min { StormSchema.distance(col.toString(), it) }
                def hint = StormSchema.distance(col.toString(), near) <= 3 ? " (did you mean ${near}?)" : ''
                errors << "samplesheet ${input}: unknown column '${col}'${hint}; columns: ${known.join(', ')}".toString()
            }
            ['id', 'path'].findAll { !(it in columns) }.each { errors << "samplesheet ${input} has no '${it}' column".toString() }
        } else {
            rows = input.tokenize(',')*.trim().findAll { it }.collect { p ->
                [id: p.tokenize("/").last().replaceFirst(/(?i)\.h5ad$/, ""), path: p]
            }
        }
        if (errors) return [datasets: [], errors: errors]

        def datasets = []
        rows.eachWithIndex { row, i ->
            def rowErrors = []
            def id = text(row.id)
            if (!id) rowErrors << "${where(i)}: the id is empty"
            else if (!(id ==~ schema.idPattern())) rowErrors << "${where(i)}: id '${id}' may hold only letters, digits, '_', '.' and '-' (it names folders)"
            def paths = []
            if (input != 'synthetic') {
                def (found, pathErrors) = shards(row.path, base)
                paths = found
                rowErrors.addAll(pathErrors.collect { "${where(i)}: ${it}" })
            }
            def settings = [:]
            schema.samplesheetColumns().each { name, spec ->
                def (value, error) = column(name, spec, row, values, schema)
                if (error) rowErrors << "${where(i)}: ${error}"
                settings[name] = value
            }
            errors.addAll(rowErrors*.toString())
            def spec = schema.group('dataset_spec').keySet().collectEntries { [it, settings[it]] }
            datasets << [meta: [id: id, spec: spec], paths: paths, split_strategy: settings.split_strategy,
                         cell_types: settings.cell_types ?: []]
        }
        def ids = datasets*.meta*.id
        ids.findAll { ids.count(it) > 1 }.unique().each { errors << "--input names dataset '${it}' more than once; ids must be unique".toString() }
        return [datasets: errors ? [] : datasets, errors: errors]
    }

    /**
     * A row's h5ad files: one, or a sharded dataset's shards (Tahoe's plates), in order: a list
     * (`;`-separated, or a YAML list) or a glob (`plates/plate*.h5ad`, sorted by name, numbers
     * by value). [paths, errors]
     */
    static List shards(value, Path base) {
        def items = (value instanceof List ? value*.toString() : text(value).tokenize(';'))*.trim().findAll { it }
        if (!items) return [[], ['the path is empty']]
        def paths = [], errors = []
        items.each { item ->
            if (item.contains('://')) { paths << item; return }
            def matches = [base.resolve(item)]
            if (item ==~ /.*[*?\[].*/) {
                def pattern = matches[0]
                def matcher = pattern.fileSystem.getPathMatcher("glob:${pattern}")
                matches = Files.isDirectory(pattern.parent) ?
                    Files.list(pattern.parent).withCloseable { it.toList() }.findAll { matcher.matches(it) }
                        .sort { a, b -> naturalOrder(a.fileName.toString(), b.fileName.toString()) } : []
                if (!matches) errors << "no file matches ${item}".toString()
            } else if (!Files.isRegularFile(matches[0])) {
                errors << "no such file: ${item}".toString()
            }
            paths.addAll(matches*.toString())
        }
        paths.findAll { !(it ==~ /(?i).*\.h5ad$/) }.each { errors << "${it} is not an .h5ad file".toString() }
        paths.countBy { it.tokenize('/').last() }.findAll { it.value > 1 }.each {
            errors << "two shards are named ${it.key}; a dataset's shards need distinct file names".toString()
        }
        return [paths, errors]
    }

    /** Names with their digits compared as numbers: plate2 before plate10. */
    private static int naturalOrder(String a, String b) {
        def split = { String s -> s.findAll(/\d+|\D+/).collect { it ==~ /\d+/ ? it.toBigInteger() : it } }
        def (x, y) = [split(a), split(b)]
        for (int i = 0; i < Math.min(x.size(), y.size()); i++) {
            def (p, q) = [x[i], y[i]]
            int c = p.getClass() == q.getClass() ? p <=> q : (p instanceof BigInteger ? -1 : 1)
            if (c) return c
        }
        return x.size() <=> y.size()
    }

    /** One setting of a row: its own cell, or the global parameter; [value, error]. */
    private static List column(String name, Map spec, Map row, Map values, StormSchema schema) {
        def optional = schema.blankMeansNone(name)
        def cell = row.containsKey(name) ? row[name] : null
        def global = values[name]
        if (name == 'cell_types') {
            def list = cell instanceof List ? cell*.toString() : text(cell ?: (row.containsKey(name) ? '' : global)).tokenize(',;')*.trim()
            return [list.findAll { it && it != 'none' }, null]
        }
        def value = row.containsKey(name) ? text(cell) : text(global)
        if (!value && !optional && row.containsKey(name)) value = text(global)  // blank cell: the global value
        if (!value || (optional && value == 'none')) return [null, null]
        def error = schema.constraint(name, spec, value, null)
        return [value, error ? error.replaceFirst(/^--/, '') : null]
    }

    static final List<String> PREDICTION_COLUMNS = ['dataset', 'seed', 'model', 'path', 'pert_col', 'control_pert', 'celltype_col']

    /**
     * `--predictions`: predictions another tool made on storm's splits, scored beside storm's models.
     * One row per (dataset, seed, model) with the pred h5ad's path; `pert_col`, `control_pert` and
     * `celltype_col` name its columns where they are not storm's (as `cell-eval run` takes them).
     * [predictions: [[meta: [id, seed, model, columns], path]], errors: [line]]
     */
    static Map readPredictions(String sheetName, List<String> datasetIds, List<Integer> seeds, List<String> models,
                               String idPattern, Path launchDir) {
        def sheet = launchDir.resolve(sheetName)
        if (!Files.isRegularFile(sheet)) return [predictions: [], errors: ["--predictions: no such samplesheet: ${sheetName}".toString()]]
        def rows
        try {
            rows = sheetName ==~ /(?i).*\.ya?ml$/ ? yamlRows(sheet) : tableRows(sheet, sheetName ==~ /(?i).*\.tsv$/ ? '\t' : ',')
        } catch (Exception e) {
            return [predictions: [], errors: ["--predictions ${sheetName}: cannot read it: ${e.message}".toString()]]
        }
        def errors = []
        def columns = rows*.keySet().flatten().unique()
        columns.findAll { !(it in PREDICTION_COLUMNS) }.each {
            errors << "--predictions ${sheetName}: unknown column '${it}'; columns: ${PREDICTION_COLUMNS.join(', ')}".toString()
        }
        ['dataset', 'seed', 'model', 'path'].findAll { !(it in columns) }.each {
            errors << "--predictions ${sheetName} has no '${it}' column".toString()
        }
        if (!rows) errors << "--predictions ${sheetName} has no rows".toString()
        if (errors) return [predictions: [], errors: errors]
        def predictions = []
        def seen = [] as Set
        rows.eachWithIndex { row, i ->
            def where = "--predictions ${sheet.fileName} row ${i + 1}"
            def (id, seed, model, path) = ['dataset', 'seed', 'model', 'path'].collect { text(row[it]) }
            if (!(id in datasetIds)) errors << "${where}: dataset '${id}' is not one of this run's (${datasetIds.join(', ')})".toString()
            if (!(seed ==~ /\d+/) || !(seed.toInteger() in seeds)) errors << "${where}: seed '${seed}' is not one of --split_seeds (${seeds.join(', ')})".toString()
            if (!(model ==~ idPattern)) errors << "${where}: model '${model}' may hold only letters, digits, '_', '.' and '-'".toString()
            else if (model in models) errors << "${where}: model '${model}' is also trained by this run (--models); name the prediction otherwise".toString()
            if (!seen.add([id, seed, model])) errors << "${where}: ${id} seed ${seed} ${model} is listed twice".toString()
            def file = path ? sheet.parent.resolve(path) : null
            if (!file || !Files.isRegularFile(file)) errors << "${where}: no such file: ${path}".toString()
            def named = ['pert_col', 'control_pert', 'celltype_col'].collectEntries { [it, text(row[it])] }.findAll { k, v -> v }
            if (!errors) predictions << [meta: [id: id, seed: seed.toInteger(), model: model, columns: named], path: file.toString()]
        }
        return [predictions: errors ? [] : predictions, errors: errors]
    }

    private static String text(value) {
        value == null || value instanceof Boolean ? '' : value.toString().trim()
    }

    private static List<Map> yamlRows(Path sheet) {
        def data = new YamlSlurper().parse(sheet)
        if (!(data instanceof List) || data.any { !(it instanceof Map) })
            throw new IllegalArgumentException('expected a list of datasets, each a mapping of column to value')
        return data.collect { row -> row.collectEntries { k, v -> [k.toString(), v] } }
    }

    /** Rows of a CSV (RFC 4180 quoting) or TSV file with a header line. */
    private static List<Map> tableRows(Path sheet, String separator) {
        def lines = Files.readAllLines(sheet).findAll { it.trim() && !it.startsWith('#') }
        if (!lines) return []
        def header = split(lines[0], separator)*.trim()
        return lines.drop(1).withIndex().collect { line, i ->
            def cells = split(line, separator)
            if (cells.size() > header.size())
                throw new IllegalArgumentException("row ${i + 1} has ${cells.size()} cells but the header ${header.size()}")
            [header, cells + [''] * (header.size() - cells.size())].transpose().collectEntries()
        }
    }

    static List<String> split(String line, String separator) {
        def cells = []
        def cell = new StringBuilder()
        boolean quoted = false
        for (int i = 0; i < line.size(); i++) {
            def c = line[i]
            if (quoted) {
                if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') { cell << '"'; i++ }
                else if (c == '"') quoted = false
                else cell << c
            } else if (c == '"' && separator == ',') quoted = true
            else if (c == separator) { cells << cell.toString(); cell = new StringBuilder() }
            else cell << c
        }
        if (quoted) throw new IllegalArgumentException("unclosed quote in: ${line}")
        cells << cell.toString()
        return cells
    }
}
