"""The READMEs' Inputs and Outputs tables match the Terraform."""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import readme_tables  # noqa: E402


class ReadmeTablesAreCurrent(unittest.TestCase):
    def test_every_folder(self):
        for folder in readme_tables.FOLDERS:
            with self.subTest(folder=folder):
                head, current = readme_tables.split_readme(folder)
                self.assertTrue(head.strip(), f"{folder}/README.md has no text before its tables")
                self.assertEqual(
                    current,
                    readme_tables.tables(folder),
                    f"{folder}/README.md is out of date: run python infra/tests/readme_tables.py --write",
                )

    def test_tables_list_every_variable(self):
        table = readme_tables.tables("modules/region")
        self.assertIn("| `create_lambda` |", table)
        self.assertIn("| `queue_arn` |", table)


if __name__ == "__main__":
    unittest.main()
