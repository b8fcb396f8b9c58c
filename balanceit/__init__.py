"""balanceit"""
