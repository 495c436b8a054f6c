"""`pulumi up` entry point: the whole program lives in fleet.program."""

from fleet.program import fleet_program

fleet_program()
