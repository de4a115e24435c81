"""kdteach.core"""
