"""The run layer, the top floor: config loading and checks, the stage declarations, the pipeline, the
command line and the demo. It is the only code that knows every stage; nothing imports it."""
