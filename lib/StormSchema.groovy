import groovy.json.JsonSlurper
import java.nio.file.Files
import java.nio.file.Path

/**
 * storm's parameters as nextflow_schema.json describes them (nf-core's layout): grouped help,
 * and the launch-time check of every parameter (unknown names, types, enums, patterns, ranges,
 * files). The nf-schema plugin does this in nf-core pipelines; storm runs offline without plugins.
 */
class StormSchema {

    final List<Map> groups      // [name, title, description, properties: [name: spec]]
    final Map<String, Map> properties
    final Map<String, Map> input   // assets/schema_input.json: the samplesheet's columns and their rules

    StormSchema(Path file) {
        def schema = new JsonSlurper().parse(file.toFile())
        input = new JsonSlurper().parse(file.parent.resolve('assets/schema_input.json').toFile()).items.properties
        groups = schema['allOf'].collect { ref ->
            def name = ref['$ref'].tokenize('/').last()
            def group = schema['$defs'][name]
            [name: name, title: group.title, description: group.description, properties: group.properties]
        }
        properties = groups.collectEntries { it.properties }
    }

    /** The properties of one group, e.g. `dataset_spec`. */
    Map<String, Map> group(String name) {
        groups.find { it.name == name }.properties
    }

    /** The parameters a samplesheet column can set per dataset (assets/schema_input.json's
     *  columns besides id and path), each with the parameter's own spec. */
    Map<String, Map> samplesheetColumns() {
        input.keySet().findAll { !(it in ['id', 'path']) }.collectEntries { [it, properties[it]] }
    }

    /** A blank samplesheet cell or `--x ''` of this parameter means "none", not the global value. */
    boolean blankMeansNone(String name) {
        input[name]?.blank == 'none'
    }

    /** What a dataset's id (and a prediction's model name) may hold: they name folders. */
    String idPattern() {
        input.id.pattern.replaceAll(/^\^|\$$/, '')
    }

    // ---- help --------------------------------------------------------------------------------

    String help(String topic = null) {
        if (topic && topic != 'true') {
            def name = topic.replaceFirst(/^--/, '')
            def spec = properties[name]
            if (!spec) return "unknown parameter --${name}${suggestion(name)}"
            def lines = ["--${name}  (${typeName(spec)})", "    ${spec.description}"]
            if (spec.help_text) lines += wrap(spec.help_text, 92).collect { "    ${it}" }
            if (spec.enum) lines << "    one of: ${spec.enum.join(', ')}"
            if (spec.containsKey('default')) lines << "    default: ${show(spec.default)}"
            return lines.join('\n')
        }
        def lines = ['storm: train and benchmark single-cell perturbation-response models', '',
                     'Usage: nextflow run main.nf --input <h5ad|samplesheet|synthetic> [--parameter value ...] [-profile p]',
                     '       nextflow run main.nf --help <parameter>   one parameter in full', '']
        def width = properties.keySet()*.size().max() + 4
        groups.each { group ->
            lines << "${group.title}:".toString()
            group.properties.each { name, spec ->
                def value = spec.containsKey('default') && spec.default != '' ? " [${show(spec.default)}]" : ''
                lines << "  --${name.padRight(width - 2)}${spec.description}${value}".toString()
            }
            lines << ''
        }
        lines << 'Profiles: test, slurm, gpu, awsbatch, docker, podman, singularity, apptainer, debug (README.md)'
        return lines.join('\n')
    }

    private static String typeName(Map spec) {
        spec.type instanceof List ? spec.type.join(' or ') : spec.type
    }

    private static String show(value) {
        value instanceof String ? "'${value}'" : String.valueOf(value)
    }

    private static List<String> wrap(String text, int width) {
        def lines = [], line = ''
        text.split(/\s+/).each { word ->
            if (line && (line.size() + word.size() + 1) > width) { lines << line; line = word }
            else line = line ? "${line} ${word}" : word
        }
        if (line) lines << line
        return lines
    }

    // ---- checks ------------------------------------------------------------------------------

    /**
     * Check every parameter. Returns [values: the parameters with types settled (an empty
     * `--x ''`, which Nextflow passes as `true`, becomes '' for a string), errors: one line each].
     */
    Map check(Map params, Path launchDir) {
        def errors = []
        def values = [:]
        def given = params.keySet() as List
        given.each { key ->
            if (properties.containsKey(key)) return
            // Nextflow adds a camelCase twin of `--a-b`; report the name the user typed once
            if (key ==~ /.*[A-Z].*/ && given.any { it.contains('-') && camel(it) == key }) return
            errors << "unknown parameter --${key}${suggestion(key)}".toString()
        }
        properties.each { name, spec ->
            def (value, error) = coerce(name, spec, params[name])
            if (error) { errors << error; return }
            values[name] = value
            if (value == null || value == '') return
            error = constraint(name, spec, value, launchDir)
            if (error) errors << error
        }
        return [values: values, errors: errors]
    }

    /** A value with the parameter's type, or an error line; numbers typed as text are read. */
    List coerce(String name, Map spec, value) {
        def types = spec.type instanceof List ? spec.type : [spec.type]
        if (value == null) return [null, null]
        if ('object' in types)
            return value instanceof Map ? [value, null] : [null, "--${name} must be a mapping: give it in a -params-file (YAML or JSON)".toString()]
        if ('boolean' in types && value instanceof Boolean) return [value, null]
        if ('string' in types) {
            if (value instanceof Boolean) return [value ? '' : null, null]  // `--x ''` or `--x` alone
            return [value.toString(), null]
        }
        if (value instanceof Boolean && value)
            return [null, "--${name} needs a value (${types.join(' or ')})".toString()]
        def text = value.toString().trim()
        if ('integer' in types) {
            if (value instanceof Integer || value instanceof Long || text ==~ /-?\d+/) return [text.toLong(), null]
            return [null, "--${name} must be an integer, got '${value}'".toString()]
        }
        if ('number' in types) {
            if (value instanceof Number || text.isNumber()) return [text.toBigDecimal(), null]
            return [null, "--${name} must be a number, got '${value}'".toString()]
        }
        if ('boolean' in types) {
            if (text in ['true', 'false']) return [text == 'true', null]
            return [null, "--${name} must be true or false, got '${value}'".toString()]
        }
        return [value, null]
    }

    /** The enum, pattern, range and file rules of a property, or null when the value obeys them. */
    String constraint(String name, Map spec, value, Path launchDir) {
        if (spec.enum && !(value.toString() in spec.enum))
            return "--${name} must be one of ${spec.enum.join(', ')}, got '${value}'${closest(value.toString(), spec.enum)}"
        if (spec.pattern && value instanceof String && !(value ==~ spec.pattern))
            return "--${name} '${value}' is malformed: ${spec.description}"
        if (value instanceof Number) {
            if (spec.containsKey('minimum') && value < spec.minimum) return "--${name} must be at least ${spec.minimum}, got ${value}"
            if (spec.containsKey('maximum') && value > spec.maximum) return "--${name} must be at most ${spec.maximum}, got ${value}"
            if (spec.containsKey('exclusiveMinimum') && value <= spec.exclusiveMinimum)
                return "--${name} must be more than ${spec.exclusiveMinimum}, got ${value}"
        }
        if (spec.exists && value instanceof String && !value.contains('://')) {
            def path = launchDir.resolve(value)
            if (spec.format == 'file-path' && !Files.isRegularFile(path)) return "--${name}: no such file: ${value}"
            if (spec.format == 'directory-path' && !Files.isDirectory(path)) return "--${name}: no such folder: ${value}"
        }
        return null
    }

    /** ' (did you mean --x?)' for the closest known parameter, or ''. */
    String suggestion(String name) {
        def wanted = name.replace('-', '_').toLowerCase()
        def best = properties.keySet().min { distance(wanted, it) }
        return best && distance(wanted, best) <= Math.max(2, wanted.size().intdiv(3)) ? " (did you mean --${best}?)" : ''
    }

    static String closest(String value, List choices) {
        def best = choices.min { distance(value, it.toString()) }
        return distance(value, best.toString()) <= 3 ? " (did you mean ${best}?)" : ''
    }

    private static String camel(String kebab) {
        kebab.replaceAll(/-(\w)/) { all, c -> c.toUpperCase() }
    }

    /** Levenshtein distance: the edits that turn a into b. */
    static int distance(String a, String b) {
        def row = (0..b.size()) as int[]
        for (int i = 1; i <= a.size(); i++) {
            int diagonal = row[0]
            row[0] = i
            for (int j = 1; j <= b.size(); j++) {
                int above = row[j]
                row[j] = Math.min(Math.min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.size()]
    }
}
