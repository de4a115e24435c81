"""kdteach.publish"""
