"""The project's admin site: Django's, plus the console's overview page linked from the index.

Installed as the default site (admin.site) by BagTrackerAdminConfig in INSTALLED_APPS, so every
`@admin.register` in the apps lands here unchanged.
"""

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.urls import path


class BagTrackerAdminSite(AdminSite):
    index_template = "admin/console/index.html"

    def get_urls(self):
        return [path("overview/", self.admin_view(self.overview_view), name="overview"), *super().get_urls()]

    def overview_view(self, request):
        from snapshots.console.views import overview

        return overview(request, self)


class BagTrackerAdminConfig(AdminConfig):
    default_site = "config.admin_site.BagTrackerAdminSite"
