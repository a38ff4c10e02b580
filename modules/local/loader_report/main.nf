process LOADER_REPORT {
    label 'process_single'

    input:
    path(results, stageAs: 'results/*')
    val(versions)         // what every step ran, one YAML block per process

    output:
    path("report"), emit: report
    path("software_versions.yml"), emit: versions   // every step's, LOADER_REPORT's own last

    script:
    """
    cat > software_versions.yml <<'STORM_VERSIONS'
${versions}
STORM_VERSIONS
    mkdir -p report
    ${StormCli.call('loaders report', 'report/report')} ${results} --out-dir report
    ${StormCli.appendVersions(task.process)}
    """

    stub:
    """
    mkdir report
    touch report/summary.csv software_versions.yml
    """
}
