from simulator.cli import app

app(prog_name="simulate")
