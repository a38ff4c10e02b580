import groovy.json.JsonOutput

/** How a process calls the storm CLI: its log and versions files, and arguments quoted for bash. */
class StormCli {

    /** `storm <step>` writing the task's log to `<log>.log` and what it ran to versions.yml. */
    static String call(String step, String log = null) {
        "storm --log-file ${log ?: step.tokenize(' ').last()}.log --versions-file versions.yml ${step}"
    }

    /** The dataset spec of a meta map as one quoted JSON argument. */
    static String spec(Map meta) {
        "--spec ${quote(JsonOutput.toJson(meta.spec))}"
    }

    /** An option given once per file (a sharded dataset's shards, in order): `--prepared a --prepared b`. */
    static String each(String option, files) {
        [files].flatten().findAll { it }.collect { "${option} ${quote(it)}" }.join(' ')
    }

    static String quote(value) {
        "'" + value.toString().replace("'", "'\\''") + "'"
    }

    /** The step's own versions.yml appended to software_versions.yml as its block, under the step's
     *  simple name as every other block (the report steps, which write the run's file). */
    static String appendVersions(String process) {
        "{ echo '${process.tokenize(':').last()}:'; sed 's/^/  /' versions.yml; } >> software_versions.yml"
    }

    /** What a stub task writes besides its outputs. */
    static String stubFiles(String log) {
        "touch ${log}.log; printf 'storm: stub\\n' > versions.yml"
    }
}
